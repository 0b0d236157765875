"""Authorisation rules the services share: who may write, administer, and see which model."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import NotFound, PermissionDenied
from registry.models import Model
from registry.schemas import Actor
from registry.service._lookup import team_name


def require_writer(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor may change state (maintainer or admin)."""
    if actor.role == "reader":
        raise PermissionDenied(f"{actor.name} is a reader and cannot change the registry")


def require_admin(actor: Actor, doing: str) -> None:
    """Raise PermissionDenied unless the actor is an admin."""
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin may {doing}")


def can_see(session: Session, actor: Actor, model: Model) -> bool:
    """Whether ``actor`` may see ``model``: admins see all, others only their team's models."""
    return actor.role == "admin" or is_visible(actor, team_name(session, model.team_id))


def is_visible(actor: Actor, team: str | None) -> bool:
    """Whether ``actor`` may see a model owned by ``team`` (the rule of `can_see`)."""
    return actor.role == "admin" or (actor.team is not None and team == actor.team)


def visible_model(session: Session, actor: Actor, name: str, *, lock: bool = False) -> Model:
    """Return the model called ``name`` if the actor may see it (locked FOR UPDATE if asked).

    Raises:
        NotFound: if it does not exist or belongs to another team (never leaked).
    """
    query = select(Model).where(Model.name == name)
    if lock:
        query = query.with_for_update()
    model = session.scalars(query).one_or_none()
    if model is None or not can_see(session, actor, model):
        raise NotFound(f"model {name!r} not found")
    return model
