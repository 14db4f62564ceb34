"""Restart safety: the state directory and its journals (journal.py), the records a workspace's state
is saved as and rebuilt from (codec.py), and the saver that ties them to a workspace (saver.py)."""
