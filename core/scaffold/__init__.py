"""The ``cartstatus new-connector`` scaffold."""
