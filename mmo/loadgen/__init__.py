"""mmo.loadgen"""
