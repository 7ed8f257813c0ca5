"""fieldsync field client: replica, officer CLI, sync agent. Arrives with the field client issue."""
