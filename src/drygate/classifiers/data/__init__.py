"""Classifier data: the command table and tables derived from tools' own sources."""
