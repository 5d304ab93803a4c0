"""The CapabilityStatement ``rest.security`` element for ``/fhir/metadata`` (SAL-CONF
"Declaring support in CapabilityStatement": SMART-on-FHIR service code, oauth-uris extension)."""
from __future__ import annotations

from typing import Any

from app.auth.discovery import endpoints
from app.settings import Settings

OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
SERVICE_SYSTEM = "http://terminology.hl7.org/CodeSystem/restful-security-service"


def smart_security(settings: Settings) -> dict[str, Any]:
    """``CapabilityStatement.rest[0].security`` as a dict, ready to embed."""
    ep = endpoints(settings)
    uris = [("authorize", "authorization_endpoint"), ("token", "token_endpoint"),
            ("introspect", "introspection_endpoint"), ("revoke", "revocation_endpoint"),
            ("register", "registration_endpoint")]
    return {
        "extension": [{
            "url": OAUTH_URIS,
            "extension": [{"url": name, "valueUri": ep[key]} for name, key in uris],
        }],
        "cors": True,
        "service": [{
            "coding": [{"system": SERVICE_SYSTEM, "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}],
            "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
        }],
        "description": "SMART App Launch 2.2 and SMART Backend Services; see "
                       f"{settings.fhir_base}/.well-known/smart-configuration",
    }
