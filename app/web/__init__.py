"""The practice web app served at ``/app/``: static ES modules that use only the public FHIR API."""
