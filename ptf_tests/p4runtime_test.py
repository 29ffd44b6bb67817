"""Generic P4Runtime packet-test base: one layer, no pipeline knowledge.

``setUp`` connects as primary controller, pushes the pipeline named by the
test parameters and flushes the data plane; every entity a test installs is
recorded and removed in reverse order by ``tearDown``, so tests never leak
state into each other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ptf
import ptf.testutils as tu
from finsy import P4Schema
from finsy.p4entity import P4Entity
from finsy.proto import p4r
from ptf.base_tests import BaseTest

from pyoffload.p4runtime import P4RuntimeClient, UpdateType


def param(name: str) -> Any:
    value = tu.test_param_get(name)
    if value is None:
        raise RuntimeError(
            f"PTF test parameter {name!r} is missing: run the tests with "
            "`python -m bmv2_env.ptf_runner`, which sets it"
        )
    return value


class P4RuntimeTest(BaseTest):  # type: ignore[misc]
    """Connects, pushes the pipeline, records writes and undoes them."""

    client: P4RuntimeClient
    schema: P4Schema
    target: str

    def setUp(self) -> None:
        BaseTest.setUp(self)
        self.dataplane = ptf.dataplane_instance
        self.dataplane.flush()
        self.target = str(param("target"))
        self.cpu_port = int(param("cpu_port"))
        self.client = P4RuntimeClient(str(param("grpc_addr")), device_id=int(param("device_id")))
        self.client.open()
        try:
            self.schema = self.client.set_pipeline(
                Path(param("p4info")), Path(param("bmv2_json"))
            )
        except BaseException:
            # tearDown does not run when setUp fails: release the controller here.
            self.client.close()
            raise
        self._undo: list[p4r.Entity] = []

    def tearDown(self) -> None:
        try:
            for entity in reversed(self._undo):
                self.client.write_entities(UpdateType.DELETE, [entity])
        finally:
            self._undo.clear()
            self.client.close()
            BaseTest.tearDown(self)

    def insert(self, *entities: P4Entity) -> None:
        """Install entities now; remove them after the test."""
        encoded = [e.encode(self.schema) for e in entities]
        self.client.write_entities(UpdateType.INSERT, encoded)
        self._undo.extend(encoded)

    def modify(self, *entities: P4Entity) -> None:
        self.client.write_entities(UpdateType.MODIFY, [e.encode(self.schema) for e in entities])

    def read(self, entity: P4Entity) -> list[p4r.Entity]:
        return self.client.read([entity.encode(self.schema)])
