#!/usr/bin/env python3
"""Tests of cross/count.py (run by tests/pkg/run.sh): reading the plugin's and the example's
output, instructions per packet net of the baseline, the derived open cost and the projection's
formula (the same as `braid lab cpu`'s)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import count  # noqa: E402


class Parse(unittest.TestCase):
    def test_insns_line_is_read_among_others(self):
        self.assertEqual(count.parse_insns("sealed 0 packets\ninsns 15907\n"), 15907)

    def test_missing_count_is_an_error(self):
        with self.assertRaises(ValueError):
            count.parse_insns("insns\nsealed 3 packets\n")

    def test_acks_per_packet_from_the_pair_line(self):
        line = (
            "pair: 1000 packets of 1400 bytes delivered; datagrams edge->core 1001, "
            "core->edge 493 after the handshake (0 sends refused)\n"
        )
        self.assertAlmostEqual(count.parse_acks(line), 0.493)
        self.assertIsNone(count.parse_acks(line.replace("pair: 1000", "pair: 0")))
        self.assertIsNone(count.parse_acks("sealed 10 packets of 64 bytes\n"))


class Figures(unittest.TestCase):
    def test_per_packet_is_net_of_the_baseline(self):
        self.assertEqual(count.per_packet({0: 15_000, 1000: 1_015_000, 3000: 3_015_003}, 1000), 1000)
        self.assertEqual(count.per_packet({0: 15_000, 3000: 3_015_003}, 3000), 1000.001)

    def test_open_is_sealopen_less_seal_of_the_same_run(self):
        per = {
            "seal": {(0, 10): 100.0, (1, 10): 110.0},
            "sealopen": {(0, 10): 250.0, (1, 10): 240.0},
        }
        d = count.derived(per)
        self.assertEqual(d["open"], {(0, 10): 150.0, (1, 10): 130.0})
        self.assertNotIn("open64", d)

    def test_spread(self):
        self.assertEqual(count.spread([3, 1, 2, 10]), (1, 2.5, 10))

    def test_projection_formula_is_lab_cpus(self):
        # src/lab/cpu.rs's test: 10 instructions per byte at 880 MHz, IPC 0.5.
        want = 880e6 * 0.5 / 10.0 * 8.0 / 1e6
        self.assertAlmostEqual(count.mbps(14_000, 0.5), want)
        # 100 Mbit/s of 1400-byte packets at that cost: 8,929 packets/s * 14,000 instructions.
        self.assertAlmostEqual(count.core_share(14_000, 100, 0.5), 100 / want)

    def test_constants_come_from_lab_cpu(self):
        # The values src/lab/cpu.rs declares, read from there; a source without them is an error.
        self.assertEqual((count.MT7621_HZ, count.IPC), count.lab_constants())
        self.assertEqual(count.MT7621_HZ, 880e6)
        self.assertEqual(count.IPC, (0.5, 0.8))
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".rs") as f:
            f.write("pub(crate) const MT7621_HZ: f64 = 1e9;\n")
            f.flush()
            with self.assertRaises(ValueError):
                count.lab_constants(f.name)

    def test_table_has_a_row_per_workload_and_the_derived_open(self):
        results = {
            "mips": {
                "per": {
                    "seal": {(0, 10): 100.0, (0, 20): 100.0},
                    "sealopen": {(0, 10): 250.0, (0, 20): 250.0},
                },
                "base": {"seal": [7], "sealopen": [9]},
                "acks": [],
            }
        }
        t = count.table(results, [10, 20]).splitlines()
        self.assertEqual(len(t), 2 + 3)
        self.assertIn("| mips | open | 1 | (sealopen - seal) | 150 / 150 / 150 |", t[3])
        self.assertEqual(count.projection("mips", results["mips"]), "")


if __name__ == "__main__":
    unittest.main()
