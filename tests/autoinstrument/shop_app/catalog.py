"""The shop's work: a sync lookup, an async price fetch, and a checkout (the scope)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import List

from shop_app.shoplog import emit

logger = logging.getLogger("shop")
PRICES = {"tea": 4, "mug": 9, "pot": 25}


class Catalog:
    def lookup(self, sku: str) -> bool:
        time.sleep(0.01)
        return sku in PRICES


async def fetch_price(sku: str) -> int:
    await asyncio.sleep(0.02)
    return PRICES[sku]


@dataclass
class Receipt:
    total: int
    items: int
    paid: bool


class Checkout:
    def __init__(self) -> None:
        self.catalog = Catalog()

    async def run(self, skus: List[str]) -> Receipt:
        known = [sku for sku in skus if self.catalog.lookup(sku)]
        prices = await asyncio.gather(*(fetch_price(sku) for sku in known))
        emit(logger, logging.INFO, "checkout_done", items=len(known))
        return Receipt(total=sum(prices), items=len(known), paid=bool(known))
