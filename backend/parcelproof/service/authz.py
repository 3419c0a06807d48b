"""Who may do what: roles, their permissions, and the principal a request acts as."""

from __future__ import annotations

from dataclasses import dataclass

from parcelproof.core.errors import Error

#: Permissions a route may require. API clients hold some of them as "scopes"; staff roles
#: grant fixed sets. ``read`` is the dispute-evidence read (every field revealed).
PERMISSIONS = frozenset(
    {
        "shipments:write",
        "events:write",
        "anchor:write",
        "read",
        "privacy:export",
        "privacy:erase",
        "audit:read",
        "staff:manage",
        "mfa:enrol",
        "disputes:open",
        "disputes:resolve",
        "webhooks:manage",  # register, list, test and delete signed webhooks
        "console:read",  # the staff console's overview: anchoring, shipments, checkpoints
    }
)
#: The scopes a machine client (role courier-api-client) may hold.
CLIENT_SCOPES = frozenset(
    {"shipments:write", "events:write", "anchor:write", "read", "webhooks:manage"}
)

OPERATOR = "courier-operator"
RESOLVER = "dispute-resolver"
ADMIN = "consortium-admin"
API_CLIENT = "courier-api-client"
STAFF_ROLES = (OPERATOR, RESOLVER, ADMIN)
#: Staff roles that may do nothing but enrol a second factor until they have one.
MFA_REQUIRED = frozenset({RESOLVER, ADMIN})

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    # Runs the courier's day-to-day: shipments, manual anchoring, customers' data requests.
    # Opens disputes for customers who call in.
    OPERATOR: frozenset(
        {
            "shipments:write",
            "anchor:write",
            "privacy:export",
            "privacy:erase",
            "mfa:enrol",
            "disputes:open",
            "console:read",
            "webhooks:manage",
        }
    ),
    # Reads full evidence and the audit trail; opens, assigns, comments and resolves disputes
    # (the only role that records outcomes); changes no parcel data.
    RESOLVER: frozenset(
        {"read", "audit:read", "mfa:enrol", "disputes:open", "disputes:resolve", "console:read"}
    ),
    # Manages staff, reads the audit trail, answers data-protection requests.
    ADMIN: frozenset(
        {
            "staff:manage",
            "audit:read",
            "privacy:export",
            "privacy:erase",
            "anchor:write",
            "mfa:enrol",
            "console:read",
            "webhooks:manage",
        }
    ),
}


class AuthenticationError(Error):
    """Missing, malformed, unknown, expired or revoked credential (always the same answer)."""


class PermissionDeniedError(Error):
    """The caller is authenticated but may not do this."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a machine client or a staff member, of one courier log."""

    kind: str  # "client" | "staff"
    subject: str  # client id or staff user id: what the audit log records, never a name
    role: str
    permissions: frozenset[str]
    mfa: bool = False

    @property
    def actor(self) -> str:
        """The audit-log actor: kind and id (``client:…`` or ``staff:…``)."""
        return f"{self.kind}:{self.subject}"

    def check(self, permission: str) -> None:
        """Raise PermissionDeniedError unless this principal holds ``permission``."""
        if permission not in PERMISSIONS:
            raise ValueError(f"unknown permission {permission!r}")
        if permission not in self.permissions:
            if self.kind == "staff" and self.role in MFA_REQUIRED and not self.mfa:
                raise PermissionDeniedError(
                    f"the {self.role} role needs a second factor: enrol TOTP or a passkey first"
                )
            if self.kind == "client":
                raise PermissionDeniedError(f"this credential lacks the {permission!r} scope")
            raise PermissionDeniedError(f"the {self.role} role may not use {permission!r}")


def staff_permissions(role: str, mfa: bool) -> frozenset[str]:
    """The permissions a staff session of ``role`` holds (enrolment only, where MFA is
    mandatory for the role and the session was opened without a second factor)."""
    if role not in ROLE_PERMISSIONS:
        raise ValueError(f"unknown staff role {role!r}")
    if role in MFA_REQUIRED and not mfa:
        return frozenset({"mfa:enrol"})
    return ROLE_PERMISSIONS[role]
