"""The node: this process's connections, session store and supervised background tasks."""
