"""Grounded capabilities over the mesh: catalog search, contracts, SQL, lineage, incidents."""
