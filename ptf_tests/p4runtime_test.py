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
from pyoffload.p4runtime.entities import read_query, without_meter_config


def param(name: str) -> Any:
    value = tu.test_param_get(name)
    if value is None:
        raise RuntimeError(
            f"PTF test parameter {name!r} is missing: run the tests with "
            "`python -m ptf_tests.runner`, which sets it"
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
        self._undo: list[tuple[UpdateType, p4r.Entity]] = []

    def tearDown(self) -> None:
        try:
            for kind, entity in reversed(self._undo):
                self.client.write_entities(kind, [entity])
        finally:
            self._undo.clear()
            self.client.close()
            BaseTest.tearDown(self)

    def insert(self, *entities: P4Entity) -> None:
        """Install entities now; remove them after the test.

        Meter entries exist from the start (P4Runtime only modifies them):
        "inserting" one writes its config, undoing it clears the config.
        """
        for entity in entities:
            encoded = entity.encode(self.schema)
            if encoded.WhichOneof("entity") == "meter_entry":
                self.client.write_entities(UpdateType.MODIFY, [encoded])
                self._undo.append((UpdateType.MODIFY, without_meter_config(encoded)))
            else:
                self.client.write_entities(UpdateType.INSERT, [encoded])
                self._undo.append((UpdateType.DELETE, encoded))

    def modify(self, *entities: P4Entity) -> None:
        """Modify installed entities now; their previous values come back after the test."""
        for entity in entities:
            encoded = entity.encode(self.schema)
            (old,) = self.client.read([read_query(encoded)])
            self.client.write_entities(UpdateType.MODIFY, [encoded])
            self._undo.append((UpdateType.MODIFY, old))

    def delete(self, *entities: P4Entity) -> None:
        """Delete installed entities now; they are inserted again after the test."""
        for entity in entities:
            encoded = entity.encode(self.schema)
            self.client.write_entities(UpdateType.DELETE, [encoded])
            self._undo.append((UpdateType.INSERT, encoded))

    def read(self, entity: P4Entity) -> list[p4r.Entity]:
        return self.client.read([entity.encode(self.schema)])
