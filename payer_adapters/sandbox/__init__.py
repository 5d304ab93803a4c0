"""The sandbox payer: a simulated clearinghouse and payer that adjudicates by rules, deterministically.

Surfaces (all backed by one :class:`~payer_adapters.sandbox.engine.Engine`):

* mailbox — ``inbox/*.x12`` (837P, 270) → ``outbox/`` 999, 277CA, 835, 271 (``mailbox.py``);
* FHIR — ``/fhir/Claim/$submit`` (PAS-style Bundle), ``/fhir/Claim/$inquire``,
  ``/fhir/CoverageEligibilityRequest/$submit``, ``/oauth/token`` (``fhir_api.py``);
* CHC v3 JSON — eligibility, professional claims with ``Idempotency-Key``, reports (``chc_api.py``);
* ``/sandbox/ledger`` introspection and ``/sandbox/faults`` fault injection (``app.py``).

Members, fee schedule, edits and denial codes: ``data/sandbox.json``.
"""
from payer_adapters.sandbox.app import create_sandbox_app
from payer_adapters.sandbox.config import SandboxConfig, load_config
from payer_adapters.sandbox.engine import Engine
from payer_adapters.sandbox.mailbox import Mailbox

__all__ = ["create_sandbox_app", "SandboxConfig", "load_config", "Engine", "Mailbox"]
