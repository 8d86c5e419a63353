"""placeholder, replaced by the module owner."""
