"""mmgov registry: versions, aliases, audit log and admin API; torch-free."""
