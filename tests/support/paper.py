"""Counts read off the paper's Tables 1-3 by hand, independently of absgrad's catalogue.

Tests that check a run covers the whole protocol compare with these instead of repeating the
number; tests/protocol/test_catalogue.py checks the catalogue declares exactly these maps.
"""

from __future__ import annotations

#: Table 1: GAG-p for p in 0, 0.15, ..., 0.85.
TABLE1_MAPS = 9
#: Table 2: 14 rows (Grad-CAM, GAG, 7 other gradient methods, 5 reversed maps); its GAG is
#: Table 1's GAG-85.
TABLE2_NEW_MAPS = 14 - 1
#: Table 3: the variants +, -, A, G, GA of SG, IG, Guided IG, BlurIG and GB. New maps: SG's +, -
#: and G (its A is GAG-0 and its GA is GAG-85, of Table 1); all five of IG, Guided IG and BlurIG
#: (their bases are Table 2 rows); GB's base (both hooks), - and A (its +, G and GA are Table 2's
#: GB: a variance guide does not apply to one sample).
TABLE3_NEW_MAPS = 3 + 3 * 5 + 3
#: Every map the paper's protocol computes.
PAPER_MAPS = TABLE1_MAPS + TABLE2_NEW_MAPS + TABLE3_NEW_MAPS  # 43
