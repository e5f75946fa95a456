# Generated with resilient-sdk v51.0.9.1
# docker build -t ibmresilient/fn_twilio:2.3.0 .
ARG BASE_IMAGE_REPO=quay.io
# BASE_IMAGE_TAG options:
#   UBI9-minimal (default): latest, ubi9-min-py312
#   UBI10-minimal (opt-in): ubi10-min-py312, ubi10-min-py313, ubi10-min-py314
# See https://quay.io/repository/ibmresilient/soarapps-base-docker-image?tab=tags for all options
# use --build-arg BASE_IMAGE_TAG=<tag> to set base image to be built from
ARG BASE_IMAGE_TAG=latest

FROM ${BASE_IMAGE_REPO}/ibmresilient/soarapps-base-docker-image:${BASE_IMAGE_TAG}

ARG APPLICATION=fn_twilio

COPY ./dist /tmp/packages
USER 0
RUN yum -y update && yum clean all
# pip is bootstrapped via ensurepip and removed after install
RUN python3 -m ensurepip --upgrade && \
    python3 -m pip install /tmp/packages/${APPLICATION}-*.tar.gz && \
    python3 -m pip uninstall -y pip setuptools
USER 1001
COPY ./entrypoint.sh /opt/fn_twilio/entrypoint.sh
ENV APP_CONFIG_FILE=/etc/rescircuits/app.config APP_LOG_DIR=/var/log/rescircuits
ENTRYPOINT ["/bin/sh", "/opt/fn_twilio/entrypoint.sh"]
