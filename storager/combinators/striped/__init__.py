"""Striped: one object spread over N backends by a codec, with an atomic manifest.

See docs/striped.md. The modules, one idea each:

- ``_codecs``: Replicas, Stripes, ReedSolomon (ISA-L directly, or pyeclib);
- ``_isal``: the ctypes binding to ISA-L;
- ``_digests``: fragment digests (XXH3 by default, CRC-32, sha256), checked by algorithm;
- ``_manifest``: the manifest, generations, chunk keys, the composite checksum;
- ``_placement``: placement policies and quotas;
- ``_health``: backends down after repeated failures, cooldown, probe;
- ``_core``: what the parts share (pools, fragment I/O);
- ``_writer`` and ``_reader``: streaming stripe by stripe (``_buffers``: a write's
  reused buffers; ``_fragments``: one fragment read and checked; ``_in_place``: reads
  into the caller's buffer);
- ``_records``: Striped's own records in the manifest store;
- ``_state``: paths, pairs, publishing manifests;
- ``_maintenance``: gc, heal, scrub;
- ``_multipart``: parts as chunk groups;
- ``_striped``: the Striped class.
"""

from storager.combinators.striped._codecs import Codec, ReedSolomon, Replicas, Stripes
from storager.combinators.striped._health import BackendHealth
from storager.combinators.striped._maintenance import GcReport, HealReport
from storager.combinators.striped._striped import Striped

__all__ = [
    "BackendHealth",
    "Codec",
    "GcReport",
    "HealReport",
    "ReedSolomon",
    "Replicas",
    "Striped",
    "Stripes",
]
