"""The peer: a fhirstarter (PyPI) server with Encounter read and create on an in-memory dict.

Run inside its own virtual environment (bench/.venv-fhirstarter) by bench/core.py. The dict
store is the setup of fhirstarter's own example and costs the peer nothing for storage.
"""
import os
import sys
import uuid

os.environ.setdefault("FHIR_SEQUENCE", "R4B")

import uvicorn  # noqa: E402
from fhir.resources.R4B.encounter import Encounter  # noqa: E402
from fhirstarter import FHIRProvider, FHIRStarter, InteractionContext  # noqa: E402
from fhirstarter.exceptions import FHIRResourceNotFoundError  # noqa: E402

DB: dict[str, str] = {}
app = FHIRStarter(title="peer")
provider = FHIRProvider()


@provider.read(Encounter)
async def encounter_read(context: InteractionContext, id_: str) -> Encounter:
    doc = DB.get(id_)
    if doc is None:
        raise FHIRResourceNotFoundError
    return Encounter.model_validate_json(doc)


@provider.create(Encounter)
async def encounter_create(context: InteractionContext, resource: Encounter) -> str:
    id_ = str(uuid.uuid4())
    resource.id = id_
    DB[id_] = resource.model_dump_json()
    return id_


app.add_providers(provider)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
