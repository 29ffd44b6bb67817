"""The error every invalid rule, flow or request raises."""

from __future__ import annotations

from guest_shim.errors import describe

from pyoffload.errors import PyoffloadError


class RuleError(PyoffloadError, ValueError):
    """An offload request the pipeline cannot (or must not) carry out.

    ``flow`` and ``rule`` are ids (or ``#N`` positions), ``field`` a dotted path
    inside them. The message reads like the guest shim's, e.g.
    ``flow "web", rule "nat-out": snat: NAT is IPv4 only; the flow matches IPv6``.
    The agent answers the guest with it (INVALID_ARGUMENT), nothing installed.
    """

    def __init__(
        self,
        reason: str,
        *,
        flow: str | None = None,
        rule: str | None = None,
        field: str | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.flow = flow
        self.rule = rule
        self.field = field
        self.source = source
        super().__init__(describe(reason, source=source, flow=flow, rule=rule, field=field))

    def within(
        self, *, flow: str | None = None, rule: str | None = None, field: str | None = None
    ) -> RuleError:
        """The same error located inside ``flow``/``rule``, under ``field``.

        Objects are validated as they are built, bottom-up, before they know
        which flow or rule they belong to; the builder adds that on the way up.
        """
        path = self.field
        if field:
            path = f"{field}.{path}" if path else field
        return RuleError(
            self.reason,
            flow=self.flow or flow,
            rule=self.rule or rule,
            field=path,
            source=self.source,
        )
