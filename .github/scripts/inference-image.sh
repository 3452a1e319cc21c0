#!/usr/bin/env bash
# Make sure the serving image that template-root.yaml names exists in the account's ECR
# repository: build models/serving/Dockerfile (the Hugging Face inference DLC + the artifacts'
# pinned packages) and push it, unless that tag is already there. Tags are immutable and named
# after the Dockerfile's content, so a tag that exists is exactly this Dockerfile's image.
# Needs: AWS credentials (the publish role), AWS_REGION, docker, the aws CLI.
set -euo pipefail

dockerfile=models/serving/Dockerfile
tag="serving-$(sha256sum "${dockerfile}" | cut -c1-16)"
# The repository and tag the stacks deploy with: template-root.yaml's defaults.
repository=$(sed -n '/^  InferenceImageRepository:/,/Default:/s/^ *Default: *//p' template-root.yaml)
template_tag=$(sed -n '/^  InferenceImageTag:/,/Default:/s/^ *Default: *//p' template-root.yaml)
if [[ "${template_tag}" != "${tag}" ]]; then
    echo "template-root.yaml's InferenceImageTag is ${template_tag}, ${dockerfile} is ${tag}" >&2
    exit 1
fi

account=$(aws sts get-caller-identity --query Account --output text)
registry="${account}.dkr.ecr.${AWS_REGION}.amazonaws.com"
image="${registry}/${repository}:${tag}"
if aws ecr describe-images --repository-name "${repository}" --image-ids "imageTag=${tag}" \
    >/dev/null 2>&1; then
    echo "${image} is already in ECR"
    exit 0
fi

# The DLC lives in AWS's own registry account (the Dockerfile's DLC_REGISTRY default).
base_registry=$(sed -n 's/^ARG DLC_REGISTRY=//p' "${dockerfile}" | sed "s/us-east-1/${AWS_REGION}/")
for login in "${base_registry}" "${registry}"; do
    aws ecr get-login-password | docker login --username AWS --password-stdin "${login}"
done
docker build --build-arg "DLC_REGISTRY=${base_registry}" --tag "${image}" --file "${dockerfile}" \
    models/serving
docker push "${image}"
{
    echo "### Serving image"
    echo "- pushed ${image}"
} >>"${GITHUB_STEP_SUMMARY:-/dev/null}"
