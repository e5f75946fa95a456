#!/usr/bin/env python
"""fn_twilio: IBM SOAR app that sends SMS through Twilio and collects the replies.

resilient-sdk reads this file's call below as text (it evaluates the call's keyword arguments, including
display_name, the app's name in SOAR). setuptools has no display_name option, so the call goes through
soar_app, which hands setuptools everything else.
"""
import glob
import ntpath

import setuptools
from setuptools import find_packages


def get_module_name(module_path):
    """The module name of a file path."""
    return ntpath.split(module_path)[1].split(".")[0]


def snake_to_camel(word):
    """snake_case -> CamelCase."""
    return "".join(x.capitalize() or "_" for x in word.split("_"))


def soar_app(display_name, **options):
    """setuptools without display_name, SOAR's name for the app (resilient-sdk reads it from the text)."""
    del display_name
    return setuptools_install(**options)


setuptools_install = setuptools.setup
setup = soar_app

setup(
    name="fn_twilio",
    display_name="Twilio SMS",
    version="2.3.0",
    license="MIT",
    author="fn_twilio maintainers",
    author_email="maintainers@fn-twilio.dev",
    url="https://github.com/fn-twilio/fn_twilio",
    description="Send SMS to a list of numbers through Twilio and collect the replies into the incident",
    long_description="""Twilio SMS for IBM SOAR sends an SMS to a list of on-call numbers from a workflow or
playbook, in parallel and with per-recipient results, and collects the recipients' replies into the
incident's SMS Activity Log datatable.""",
    install_requires=[
        "resilient-circuits>=51.0.9.0",
        "resilient-lib~=51.0",
        "twilio~=9.13",
        "phonenumberslite~=9.0",
        "python-dateutil~=2.8",
    ],
    python_requires=">=3.9",
    packages=find_packages(include=["fn_twilio*"]) + ["fn_twilio.util.data", "fn_twilio.lib.data"],
    package_data={"fn_twilio.util.data": ["export.res"], "fn_twilio": ["LICENSE"],
                  "fn_twilio.lib.data": ["page_call_flow.json"]},
    include_package_data=True,
    platforms="any",
    classifiers=[
        "Programming Language :: Python",
        "Programming Language :: Python :: 3",
    ],
    entry_points={
        "resilient.circuits.components": [
            # one entry point per component module: fn_twilio/components/funct_<function>.py
            f"{snake_to_camel(get_module_name(filename))}FunctionComponent = "
            f"fn_twilio.components.{get_module_name(filename)}:FunctionComponent"
            for filename in glob.glob("./fn_twilio/components/[a-zA-Z]*.py")
        ],
        "resilient.circuits.configsection": ["gen_config = fn_twilio.util.config:config_section_data"],
        "resilient.circuits.customize": ["customize = fn_twilio.util.customize:customization_data"],
        "resilient.circuits.selftest": ["selftest = fn_twilio.util.selftest:selftest_function"],
    },
)
