# Stand-in for $(TOPDIR)/rules.mk: the directories and install commands package Makefiles use.
$(file >>$(SDK_LOG),rules.mk)
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR:=$(TOPDIR)/build_dir
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
INSTALL_CONF:=install -m0600
