import streamlit as st

st.title("legalft")
