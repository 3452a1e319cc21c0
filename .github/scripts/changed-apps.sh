#!/usr/bin/env bash
# Decide what a deploy of ENVIRONMENT ships (no third-party paths-filter action): the files
# changed since the commit of that environment's last successful GitHub deployment, so a
# failed, cancelled or rejected deploy's changes are shipped by the next one. Writes `stack`,
# `site` and `models` (true/false) to $GITHUB_OUTPUT and the changed apps to the job summary.
#   stack:  an app's template or code, the shared layer, template-root.yaml or samconfig.toml
#   site:   apps/frontend/site/ (static files, published outside CloudFormation)
#   models: models/ or training/ (the models are retrained and published before dev deploys)
# With DEPLOY_EVERYTHING=true, or no earlier successful deployment, everything ships.
# Needs: ENVIRONMENT, DEPLOY_EVERYTHING, GH_TOKEN (deployments: read), full git history.
set -euo pipefail

# The commit of the newest deployment of $ENVIRONMENT whose latest status is success.
last_deployed_commit() {
    local deployments id sha
    deployments=$(gh api "repos/${GITHUB_REPOSITORY}/deployments?environment=${ENVIRONMENT}&per_page=50" \
        --jq '.[] | "\(.id) \(.sha)"')
    while read -r id sha; do
        [[ -n "${id}" ]] || continue
        if [[ $(gh api "repos/${GITHUB_REPOSITORY}/deployments/${id}/statuses?per_page=1" \
            --jq '.[0].state // ""') == "success" ]]; then
            echo "${sha}"
            return
        fi
    done <<<"${deployments}"
}

base=""
if [[ "${DEPLOY_EVERYTHING}" != "true" ]]; then
    base=$(last_deployed_commit)
fi
if [[ -n "${base}" ]] && git cat-file -e "${base}^{commit}" 2>/dev/null; then
    changed=$(git diff --name-only "${base}" HEAD)
    since="since ${base:0:12}"
else
    changed=$(git ls-files)
    since="everything (no earlier successful deployment, or a manual run)"
fi

stack=false
site=false
models=false
changed_apps=()
for app_dir in apps/*/; do
    app=$(basename "${app_dir}")
    app_files=$(grep "^apps/${app}/" <<<"${changed}" || true)
    if [[ -z "${app_files}" ]]; then
        continue
    fi
    if grep -q "^apps/frontend/site/" <<<"${app_files}"; then
        site=true
    fi
    if grep -qv "^apps/frontend/site/" <<<"${app_files}"; then
        stack=true
        changed_apps+=("${app}")
    fi
done
for shared in layers/common/ template-root.yaml samconfig.toml; do
    if grep -q "^${shared}" <<<"${changed}"; then
        stack=true
        changed_apps+=("${shared}")
    fi
done

if grep -qE "^(models|training)/" <<<"${changed}"; then
    models=true
fi

{
    echo "stack=${stack}"
    echo "site=${site}"
    echo "models=${models}"
} >>"${GITHUB_OUTPUT}"
{
    echo "### ${ENVIRONMENT}: what this run deploys (${since})"
    echo "- root stack (sam build + sam deploy): ${stack}; changed: ${changed_apps[*]:-nothing}"
    echo "- site (upload + CloudFront invalidation): ${site}"
    echo "- models (train + publish): ${models}"
} >>"${GITHUB_STEP_SUMMARY}"
