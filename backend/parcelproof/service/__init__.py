"""Use cases of a courier node: record events, anchor checkpoints, look parcels up."""
