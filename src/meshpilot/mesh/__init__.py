"""What the mesh holds: the domain model, the workspace files, the metadata index, the demo, importers.

Imports none of the other layers.
"""
