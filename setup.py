from setuptools import find_packages, setup

setup(
    name="p2poverlay",
    version="0.1.0",
    description="A decentralized peer-to-peer overlay network on Twisted",
    long_description=open("README.rst", encoding="utf-8").read(),
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.9",
    packages=find_packages(include=["p2poverlay", "p2poverlay.*"])
    + ["twisted.plugins"],
    package_data={"p2poverlay.web": ["static/*.html", "static/*.js",
                                     "static/*.css"]},
    install_requires=["twisted[tls]>=23.8", "zope.interface", "automat>=24.8",
                      # PyNaCl (libsodium) checks Ed25519 signatures about
                      # three times as fast as cryptography does.
                      "cryptography", "pynacl"],
    entry_points={
        "console_scripts": ["p2p-console = p2poverlay.client:main"],
    },
    extras_require={
        "bench": ["matplotlib"],
        "test": ["pytest", "pytest-twisted", "hypothesis",
                 # Parse /metrics, drive the browser test, build the
                 # package offline.
                 "prometheus_client", "selenium", "setuptools",
                 # Lint, types and coverage (README.rst, "Checks").
                 "ruff", "mypy", "mypy-zope", "pytest-cov"],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Topic :: System :: Networking",
    ],
)
