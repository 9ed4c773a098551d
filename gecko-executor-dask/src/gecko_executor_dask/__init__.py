"""Gecko executor plugin: Team members and workflow function nodes as tasks on a dask.distributed cluster.

```python
from gecko import Team
from gecko_executor_dask import DaskExecutor

async with DaskExecutor("tcp://127.0.0.1:8786") as cluster:
    results = await Team(["myapp.members:summarize"] * 20, executor=cluster).run(texts)
```

`distributed` is imported when the executor first connects, not at `import gecko_executor_dask`.
"""

from gecko_executor_dask._executor import DaskExecutor
from gecko_executor_dask._version import __version__

__all__ = ("DaskExecutor", "__version__")
