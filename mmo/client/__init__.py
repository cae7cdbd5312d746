"""mmo.client"""
