"""Work items: the ``Task`` resources the server opens when a person must act (a held claim, a
rejection, an unapplied payment, a job that kept failing). One shape for all of them, so a
worklist reads every kind the same way: ``code`` from our task-code system, ``focus`` on what to
act on, ``for`` the patient, ``input`` the facts (each named by ``type.text``)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from app.fhir.dates import instant
from fhir_mappings.vocabulary import TASK_CODE


def task_input(name: str, **value: Any) -> dict[str, Any]:
    """One input, named ``name``, with one ``value[x]`` (``valueString=…``, ``valueMoney=…``)."""
    return {"type": {"text": name}, **value}


def work_item(code: str, display: str, description: str, now: datetime, *, inputs: list[dict[str, Any]],
              focus: str | None = None, patient: dict[str, Any] | None = None, task_id: str | None = None,
              priority: str = "routine", business_status: str | None = None) -> dict[str, Any]:
    """A requested ``Task`` (intent ``order``) asking a person to act; ``focus`` as ``Type/id``."""
    task: dict[str, Any] = {"resourceType": "Task"}
    if task_id:
        task["id"] = task_id
    task.update({
        "status": "requested", "intent": "order", "priority": priority,
        "code": {"coding": [{"system": TASK_CODE, "code": code, "display": display}]},
        "description": description,
    })
    if focus:
        task["focus"] = {"reference": focus}
    if patient:
        task["for"] = patient
    task.update({"authoredOn": instant(now), "lastModified": instant(now)})
    if business_status:
        task["businessStatus"] = {"text": business_status}
    task["input"] = inputs
    return task


def is_open(task: dict[str, Any]) -> bool:
    return task.get("status") not in ("completed", "cancelled")
