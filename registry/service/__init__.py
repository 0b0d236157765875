"""The one writer: every state change runs here in one transaction with its audit event."""

from __future__ import annotations

from registry.schemas import UNSET, Unset
from registry.service.alias_history import alias_history
from registry.service.aliases import list_aliases, promote, resolve_alias, rollback
from registry.service.audit import export_checkpoint, list_audit, verify_audit
from registry.service.auto_rollback import (
    list_auto_rollbacks,
    list_rollback_policies,
    remove_rollback_policy,
    set_rollback_policy,
)
from registry.service.checks import check_weights
from registry.service.config_schemas import diff_schemas, get_schema, list_schemas, set_schema
from registry.service.deployments import list_deployments, model_status, record_heartbeat
from registry.service.incidents import (
    acknowledge_incident,
    get_incident,
    link_incident,
    list_incidents,
    record_alerts,
    record_webhook,
    reopen_incident,
    resolve_incident,
)
from registry.service.policies import (
    DEFAULT_ALIASES,
    DEFAULT_ALIASES_ENV,
    approve,
    list_approvals,
    list_policies,
    parse_duration,
    remove_policy,
    set_free_aliases,
    set_policy,
    withdraw_approval,
)
from registry.service.references import (
    MAX_REFERENCE_BYTES,
    MMGOV_PROFILE_FORMAT,
    attach_reference,
    get_reference,
    read_profile_metadata,
)
from registry.service.registration import DEFAULT_TEAM, WeightsSource, register_version
from registry.service.sessions import authenticate_digest
from registry.service.tags import list_tags, parse_tags, remove_tags, set_stage, set_tags
from registry.service.teams import create_team, list_teams
from registry.service.tokens import (
    TOKEN_PREFIX,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
)
from registry.service.versions import (
    create_model,
    diff_versions,
    get_model,
    get_version,
    list_models,
    list_versions,
)

__all__ = [
    "DEFAULT_ALIASES",
    "DEFAULT_ALIASES_ENV",
    "DEFAULT_TEAM",
    "MAX_REFERENCE_BYTES",
    "MMGOV_PROFILE_FORMAT",
    "TOKEN_PREFIX",
    "UNSET",
    "Unset",
    "WeightsSource",
    "acknowledge_incident",
    "alias_history",
    "approve",
    "attach_reference",
    "authenticate",
    "authenticate_digest",
    "check_weights",
    "create_model",
    "create_team",
    "create_token",
    "diff_schemas",
    "diff_versions",
    "export_checkpoint",
    "get_incident",
    "get_model",
    "get_reference",
    "get_schema",
    "get_version",
    "link_incident",
    "list_aliases",
    "list_approvals",
    "list_audit",
    "list_auto_rollbacks",
    "list_deployments",
    "list_incidents",
    "list_models",
    "list_policies",
    "list_rollback_policies",
    "list_schemas",
    "list_tags",
    "list_teams",
    "list_tokens",
    "list_versions",
    "model_status",
    "parse_duration",
    "parse_tags",
    "promote",
    "read_profile_metadata",
    "record_alerts",
    "record_heartbeat",
    "record_webhook",
    "register_version",
    "remove_policy",
    "remove_rollback_policy",
    "remove_tags",
    "reopen_incident",
    "resolve_alias",
    "resolve_incident",
    "revoke_token",
    "rollback",
    "set_free_aliases",
    "set_policy",
    "set_rollback_policy",
    "set_schema",
    "set_stage",
    "set_tags",
    "verify_audit",
    "withdraw_approval",
]
