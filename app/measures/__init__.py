"""Revenue-cycle KPIs as FHIR Measures: their definitions (``definitions``), the claim facts
tables the KPIs are computed from (``facts``), the aggregate queries (``queries``) and
``$evaluate-measure`` (``evaluate``, and its route in ``routes``)."""
