"""The populace command line: thin command modules over the use cases of the layers below."""
