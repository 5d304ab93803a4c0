"""SMART on FHIR authorization server (SMART App Launch 2.2 and Backend Services).

Modules, by what they do:

- ``models``      tables (clients, users, keys, codes, refresh tokens, replay cache, ...)
- ``scopes``      SMART v1/v2/granular scope grammar, :class:`~app.auth.scopes.ScopeSet`
- ``keys``        the server's signing keys, JWKS, rotation
- ``assertions``  ``private_key_jwt`` client assertions (SMART Backend Services)
- ``clients``     client authentication at the token endpoint
- ``users``       password hashing and the login throttle
- ``tokens``      access tokens (JWT), refresh tokens, introspection, revocation
- ``grants``      the three grant types of the token endpoint
- ``authorize``   the authorization endpoint, login and consent steps
- ``discovery``   smart-configuration and openid-configuration documents
- ``bearer``      :func:`~app.auth.bearer.authenticate` for the FHIR routes
- ``admin``       tenants, clients, users, initial access tokens, launch contexts
- ``audit``       AuditEvents for authentication events
- ``housekeeping`` deleting expired codes, tokens, replay-cache entries
- ``pages``       the HTML of the login and consent steps
- ``capability``  the CapabilityStatement ``rest.security`` element
- ``oauth_routes``, ``admin_routes``  the HTTP edge (FastAPI routers)
- ``demo``, ``get_token``  demo credentials and a token-fetching helper
"""
