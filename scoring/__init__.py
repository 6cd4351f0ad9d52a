"""The engagement score: robust, size- and platform-fair comparison of creators."""
