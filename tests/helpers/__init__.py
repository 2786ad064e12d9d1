"""Helpers the tests share: paths, planted run folders, processes and servers, fault injectors."""
