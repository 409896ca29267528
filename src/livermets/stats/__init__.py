"""Tumour-burden statistics (paper Figure 3) and classifier failure analysis (Figure 5)."""
