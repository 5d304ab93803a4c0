"""Claim workflow on top of the store: gather a visit's record, build, scrub, store, follow up."""
