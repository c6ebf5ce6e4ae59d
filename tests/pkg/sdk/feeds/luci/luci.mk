# Stand-in for the LuCI feed's luci.mk: the package name it derives (luci.mk's own default for
# LUCI_NAME is the directory's name, which is `luci-app` for a symlinked checkout).
LUCI_NAME?=$(notdir ${CURDIR})
PKG_NAME?=$(LUCI_NAME)
$(file >>$(SDK_LOG),luci.mk LUCI_NAME=$(LUCI_NAME) PKG_NAME=$(PKG_NAME))
