"""fieldsync hub (Flask). The app factory arrives with the hub issue."""
