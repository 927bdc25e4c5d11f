"""Session state: the count of each client id, kept outside the connection that shows it."""
