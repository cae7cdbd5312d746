"""mmo.cluster"""
