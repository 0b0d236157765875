"""The audit trail's own mechanics, apart from the service's use cases (`registry.service.audit`).

- `registry.audit.chain`: append an event to the hash chain, read its head, verify it.
- `registry.audit.replay`: replay the events and compare the tables with what they say.
- `registry.audit.signing`: Ed25519-signed checkpoints of the chain's head.
"""
