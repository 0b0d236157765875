"""One router per resource; every route declares its authorisation rule."""
