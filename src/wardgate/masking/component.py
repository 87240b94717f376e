"""Masking as a part of the running gateway: the ``masking`` section and the targets' and APIs'
PHI labels. It builds the two masking addons (SQL results; API documents) and keeps the targets'
catalogs loaded: the first load before any listener starts, then retried until loaded and
reloaded when due or stale, once a second on a worker thread."""

from __future__ import annotations

import asyncio
import os

from wardgate.config import Config
from wardgate.keyfile import read_or_create
from wardgate.lifespan import Component
from wardgate.masking.addon import MaskingAddon
from wardgate.masking.api import DocumentMaskingAddon
from wardgate.masking.catalogs import Catalogs
from wardgate.masking.detectors import MrnFormat, Scanner, ScannerConfig
from wardgate.masking.documents import Documents
from wardgate.masking.views import Labels, Policy


class MaskingComponent(Component):
    name = "masking"

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.rows: MaskingAddon | None = None
        self.documents: DocumentMaskingAddon | None = None
        labelled = [t for t in config.targets if t.phi]
        if not labelled and not config.apis:
            return
        settings = config.masking
        policy = Policy(
            settings.operators,
            {name: (role.raw, role.operators) for name, role in settings.roles.items()},
            agents_see_raw=settings.agents_see_raw,
        )
        key_path = settings.key or config.health_path().parent / "masking.key"
        key = read_or_create(key_path, lambda: os.urandom(32))  # the pseudonym key
        if labelled:
            labels = {t.name: Labels.from_config(t.phi) for t in labelled}
            catalogs = Catalogs(labelled, settings.catalog_refresh, labels)
            self.rows = MaskingAddon(
                labels, policy, catalogs, key,
                unresolved=settings.unresolved, mrn_patterns=settings.mrn_patterns,
            )  # fmt: skip
        if config.apis:
            formats = (
                tuple(MrnFormat(p) for p in settings.mrn_patterns) or ScannerConfig().mrn_formats
            )
            apis = {a.name: a for a in config.apis}
            documents = Documents(apis, policy, key, Scanner(ScannerConfig(formats)))
            self.documents = DocumentMaskingAddon(documents)

    async def start(self) -> None:
        if self.rows is not None:
            catalogs = self.rows.catalogs
            await asyncio.get_running_loop().run_in_executor(None, catalogs.load_due)
            self.every(1.0, catalogs.load_due, blocking=True)
