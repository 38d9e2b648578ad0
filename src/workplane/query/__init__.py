"""The query layer: filterBy / search / sortBy / paging parsed once into typed terms (``filters``)
and compiled to SQL in one place (``compile``), used alike by list, count and telemetry."""
