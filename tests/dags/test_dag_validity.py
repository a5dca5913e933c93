"""Every DAG imports cleanly, is documented and tagged."""

import pytest

pytestmark = pytest.mark.airflow


def test_dags_import_without_errors_and_are_documented(airflow_home) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag()
    assert bag.import_errors == {}
    assert "exchange_daily" in bag.dags
    for dag_id, dag in bag.dags.items():
        assert dag.doc_md and len(dag.doc_md.strip()) > 50, dag_id
        assert dag.tags, dag_id
