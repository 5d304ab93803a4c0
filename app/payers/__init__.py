"""The payer side: claim submission through the outbox (``submission``), pended-claim follow-up
(``inquiry``), eligibility (``eligibility``), collection of payer answers (``inbound``) and their
posting (``posting``, ``unapplied``), every payer call under a deadline and circuit breaker
(``calls``, ``runtime``). Its hooks into the store, the claim workflow and the job queue are
installed by ``app.bootstrap``; its FHIR operations are ``app.payers.routes.router`` and
``/admin/payers`` is ``app.payers.admin_routes.router``.
"""
