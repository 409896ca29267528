"""Public data sets: a registry (URL at a pinned commit, SHA-256, licence, citation) and where their files are.

Files are found in the local mirror folder ``$LIVERMETS_DATA_DIR``, then in the data home (``$LIVERMETS_HOME/data``
or the platform's user data folder), and otherwise downloaded through :mod:`livermets.fetch` on first use. The
command line is ``livermets data list|info|fetch`` (docs/data.md).

Examples
--------
>>> from livermets.data import dataset
>>> dataset("lits_tiny").licence.split(" (")[0]
'CC BY-NC-SA 4.0'
"""

from livermets.data.registry import PAPER_FEATURES, DataFile, DataSet, dataset, dataset_of, datasets, files_under
from livermets.data.store import (
    DATA_DIR_ENV,
    DATA_URL_ENV,
    data_home,
    fetch_dataset,
    locate,
    mirror_dir,
    paper_features,
    require,
    search_roots,
    status,
)

__all__ = ["DATA_DIR_ENV", "DATA_URL_ENV", "PAPER_FEATURES", "DataFile", "DataSet", "data_home", "dataset",
           "dataset_of", "datasets", "fetch_dataset", "files_under", "locate", "mirror_dir", "paper_features",
           "require", "search_roots", "status"]
