"""Recipes shipped with stylefw; ``stylefw recipe NAME.yaml`` finds them here."""
