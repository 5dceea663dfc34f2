#!/usr/bin/env bash
# Mutation testing of the modules whose numbers users trust (see README, Development). Not run in CI.
# Needs: pip install -e '.[dev,mutation]'. Config (files, the fast tests each mutant runs): [tool.mutmut]
# in pyproject.toml. Of optkit/cache.py only the manifest check is mutated: hashing, lookup, build.
# One module at a time, most trusted first; results are kept in mutants/, so a rerun only tries
# mutants without a result (delete mutants/ after changing tests to try them all again).
set -euo pipefail
cd "$(dirname "$0")/.."
mutmut="${MUTMUT:-mutmut}"
for pattern in 'optkit.evaluate.stats.*' 'optkit.compare.*' 'optkit.reports.gates.*' \
    'optkit.cache.x_file_sha256*' 'optkit.cache.xǁArtifactCacheǁlookup*' 'optkit.cache.xǁArtifactCacheǁbuild*' \
    'optkit.recipe.*'; do
    "$mutmut" run --max-children "${MUTMUT_CHILDREN:-1}" "$pattern"
done
"$mutmut" results
