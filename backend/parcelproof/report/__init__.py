"""Package data of the dispute report (:mod:`parcelproof.service.report`): the page skeleton
(``page.html``, a :class:`string.Template`) and its print stylesheet (``report.css``), inlined
into each report so that the HTML file stands alone."""
