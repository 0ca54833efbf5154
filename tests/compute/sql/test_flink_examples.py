"""The examples of Flink's windowing table-valued functions documentation, through kvdb SQL.

https://nightlies.apache.org/flink/flink-docs-stable/docs/dev/table/sql/queries/window-tvf/
The ``Bid`` table (bidtime TIMESTAMP(3), price DECIMAL(10, 2), item STRING, supplier_id
STRING; watermark bidtime - 1 second) holds six bids, written here as JSON values of keys
``bids/<n>``; ``price`` is a DOUBLE (kvdb has no DECIMAL; these sums are exact in binary).
Flink prints its results after the end of its bounded input, when every window has closed, so
the EMIT CHANGES tables (every window, final values once all bids are in) are its tables; with
EMIT FINAL only the windows the watermark has passed appear.
"""

from __future__ import annotations

from typing import Any

import pytest

from compute import StreamComputingEngine
from kvdb import Store

from ..conftest import settle, write

BIDS = [
    ("2020-04-15 08:05", 4.00, "C", "supplier1"),
    ("2020-04-15 08:07", 2.00, "A", "supplier1"),
    ("2020-04-15 08:09", 5.00, "D", "supplier2"),
    ("2020-04-15 08:11", 3.00, "B", "supplier2"),
    ("2020-04-15 08:13", 1.00, "E", "supplier1"),
    ("2020-04-15 08:17", 6.00, "F", "supplier2"),
]

CREATE_BID = """
CREATE STREAM Bid (
    bidtime TIMESTAMP(3),
    price DOUBLE,
    item STRING,
    supplier_id STRING,
    WATERMARK FOR bidtime AS bidtime - INTERVAL '1' SECOND
) WITH (key_pattern = 'bids/.*');
"""


def at(hhmm: str) -> str:
    return f"2020-04-15T{hhmm}:00.000Z"


@pytest.fixture
async def bid(store: Store, engine: StreamComputingEngine) -> StreamComputingEngine:
    await write(
        store,
        [{"bidtime": t, "price": p, "item": i, "supplier_id": s} for t, p, i, s in BIDS],
        prefix="bids",
    )
    await engine.sql.execute(CREATE_BID)
    return engine


async def results(engine: StreamComputingEngine, store: Store, sql: str) -> list[dict[str, Any]]:
    (created,) = await engine.sql.execute(sql)
    processor = engine.get(created.name)  # type: ignore[arg-type]
    await settle(processor, store)
    return processor.results().to_json()["rows"]  # type: ignore[no-any-return]


async def test_tumble_10_minutes(bid: StreamComputingEngine, store: Store) -> None:
    rows = await results(bid, store, """
        CREATE PIPELINE tumbling AS
        SELECT window_start, window_end, SUM(price) AS total_price
          FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
          GROUP BY window_start, window_end""")  # fmt: skip
    assert rows == [
        {"window_start": at("08:00"), "window_end": at("08:10"), "total_price": 11.00},
        {"window_start": at("08:10"), "window_end": at("08:20"), "total_price": 10.00},
    ]


async def test_hop_5_minutes_slide_10_minutes_size(
    bid: StreamComputingEngine, store: Store
) -> None:
    rows = await results(bid, store, """
        CREATE PIPELINE hopping AS
        SELECT window_start, window_end, SUM(price) AS total_price
          FROM TABLE(HOP(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '5' MINUTES, INTERVAL '10' MINUTES))
          GROUP BY window_start, window_end""")  # fmt: skip
    assert rows == [
        {"window_start": at("08:00"), "window_end": at("08:10"), "total_price": 11.00},
        {"window_start": at("08:05"), "window_end": at("08:15"), "total_price": 15.00},
        {"window_start": at("08:10"), "window_end": at("08:20"), "total_price": 10.00},
        {"window_start": at("08:15"), "window_end": at("08:25"), "total_price": 6.00},
    ]


async def test_session_2_minutes_partitioned_by_supplier(
    bid: StreamComputingEngine, store: Store
) -> None:
    # supplier1 bids at 08:05, 08:07, 08:13: [08:05,08:07) and [08:07,08:09) touch and merge;
    # supplier2 at 08:09, 08:11, 08:17 likewise.
    rows = await results(bid, store, """
        CREATE PIPELINE sessions AS
        SELECT window_start, window_end, supplier_id, SUM(price) AS total_price
          FROM TABLE(SESSION(TABLE Bid PARTITION BY supplier_id, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES))
          GROUP BY window_start, window_end, supplier_id""")  # fmt: skip
    assert rows == [
        {
            "window_start": at("08:05"),
            "window_end": at("08:09"),
            "supplier_id": "supplier1",
            "total_price": 6.00,
        },
        {
            "window_start": at("08:09"),
            "window_end": at("08:13"),
            "supplier_id": "supplier2",
            "total_price": 8.00,
        },
        {
            "window_start": at("08:13"),
            "window_end": at("08:15"),
            "supplier_id": "supplier1",
            "total_price": 1.00,
        },
        {
            "window_start": at("08:17"),
            "window_end": at("08:19"),
            "supplier_id": "supplier2",
            "total_price": 6.00,
        },
    ]


async def test_session_2_minutes_without_partition(
    bid: StreamComputingEngine, store: Store
) -> None:
    # 08:05 .. 08:13 are each two minutes apart: one chain of touching sessions
    rows = await results(bid, store, """
        CREATE PIPELINE one_session AS
        SELECT window_start, window_end, SUM(price) AS total_price
          FROM TABLE(SESSION(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '2' MINUTES))
          GROUP BY window_start, window_end""")  # fmt: skip
    assert rows == [
        {"window_start": at("08:05"), "window_end": at("08:15"), "total_price": 15.00},
        {"window_start": at("08:17"), "window_end": at("08:19"), "total_price": 6.00},
    ]


async def test_session_5_minutes_partitioned(bid: StreamComputingEngine, store: Store) -> None:
    # derived from the definition [first, last + gap): supplier2's 08:09 and 08:11 make
    # [08:09, 08:16); 08:17 starts after 08:16, so it is a session of its own
    rows = await results(bid, store, """
        CREATE PIPELINE sessions5 AS
        SELECT supplier_id, window_start, window_end, SUM(price) AS total_price, COUNT(*) AS bids
          FROM TABLE(SESSION(TABLE Bid PARTITION BY (supplier_id), DESCRIPTOR(bidtime), INTERVAL '5' MINUTES))
          GROUP BY supplier_id, window_start, window_end""")  # fmt: skip
    assert [
        (r["supplier_id"], r["window_start"], r["window_end"], r["total_price"], r["bids"])
        for r in rows
    ] == [
        ("supplier1", at("08:05"), at("08:12"), 6.00, 2),
        ("supplier2", at("08:09"), at("08:16"), 8.00, 2),
        ("supplier1", at("08:13"), at("08:18"), 1.00, 1),
        ("supplier2", at("08:17"), at("08:22"), 6.00, 1),
    ]


@pytest.mark.parametrize(
    "window",
    [
        "TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES, INTERVAL '1' MINUTES)",
        "TUMBLE(DATA => TABLE Bid, TIMECOL => DESCRIPTOR(bidtime), SIZE => INTERVAL '10' MINUTES, OFFSET => INTERVAL '1' MINUTES)",
    ],
)
async def test_tumble_with_a_1_minute_offset(
    window: str, bid: StreamComputingEngine, store: Store
) -> None:
    rows = await results(bid, store, f"""
        CREATE PIPELINE offset AS
        SELECT window_start, window_end, SUM(price) AS total_price
          FROM TABLE({window})
          GROUP BY window_start, window_end""")  # fmt: skip
    assert rows == [
        {"window_start": at("08:01"), "window_end": at("08:11"), "total_price": 11.00},
        {"window_start": at("08:11"), "window_end": at("08:21"), "total_price": 10.00},
    ]


async def test_emit_final_shows_only_windows_the_watermark_passed(
    bid: StreamComputingEngine, store: Store
) -> None:
    sql = """
        CREATE PIPELINE final_tumbling AS
        SELECT window_start, window_end, SUM(price) AS total_price
          FROM TABLE(TUMBLE(TABLE Bid, DESCRIPTOR(bidtime), INTERVAL '10' MINUTES))
          GROUP BY window_start, window_end
        EMIT FINAL"""
    # the watermark is 08:17 - 1 s: [08:00, 08:10) closed, [08:10, 08:20) not yet
    assert await results(bid, store, sql) == [
        {"window_start": at("08:00"), "window_end": at("08:10"), "total_price": 11.00}
    ]
    await write(store, [{"bidtime": "2020-04-15 08:21", "price": 1.0}], prefix="bids")
    processor = bid.get("final_tumbling")
    await settle(processor, store)
    assert [r["total_price"] for r in processor.results().to_json()["rows"]] == [11.00, 10.00]


async def test_the_short_form_and_min_max_of_timestamps(
    bid: StreamComputingEngine, store: Store
) -> None:
    rows = await results(bid, store, """
        CREATE PIPELINE short AS
        SELECT window_start, COUNT(*) AS bids, MIN(bidtime) AS first_bid, MAX(item) AS last_item
          FROM TUMBLE(Bid, bidtime, INTERVAL '10' MINUTES)
          GROUP BY window_start, window_end""")  # fmt: skip
    assert rows == [
        {"window_start": at("08:00"), "bids": 3, "first_bid": at("08:05"), "last_item": "D"},
        {"window_start": at("08:10"), "bids": 3, "first_bid": at("08:11"), "last_item": "F"},
    ]
