"""Importers from other catalogs and tools into a workspace. Each is imported only when used."""
